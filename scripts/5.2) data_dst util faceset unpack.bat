@echo off
rem 5.2) data_dst util faceset unpack: write the faces of data_dst/aligned/faceset.pak back as
rem files.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    --unpack-faceset ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
