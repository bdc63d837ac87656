@echo off
rem 4) data_src faceset extract MANUAL: place every data_src face by hand in a window; saves into
rem data_src/aligned.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" extract ^
    --input-dir "%WORKSPACE%\data_src" ^
    --output-dir "%WORKSPACE%\data_src\aligned" ^
    --detector manual ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
