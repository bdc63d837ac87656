@echo off
rem 5) data_dst faceset extract MANUAL: place every data_dst face by hand in a window; saves into
rem data_dst/aligned.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" extract ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\aligned" ^
    --detector manual ^
    --max-faces-from-image 0 ^
    --output-debug ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
